"""Move money between accounts atomically: the debit goes to topic `debits`, the credit to
topic `credits`, both in one transaction. Used by transactions.sh.

    python sample-data/transfer.py TRANSACTIONAL_ID FROM TO AMOUNT [--abort] [--hang] [--hold FILE]

--abort aborts the transaction, --hang dies with it open, --hold FILE keeps it open once its
records are written (and creates FILE.open to say so) until FILE exists, then commits.
"""

import os
import sys
import time

from kcli import Producer


def main() -> None:
    argv = sys.argv[1:]
    hold = None
    if "--hold" in argv:
        i = argv.index("--hold")
        hold = argv[i + 1]
        del argv[i:i + 2]
    args = [a for a in argv if not a.startswith("--")]
    tid, source, target, amount = args
    producer = Producer({"transactional.id": tid})
    producer.init_transactions()
    producer.begin_transaction()
    producer.send("debits", f"{source} -{amount}", key=source)
    producer.send("credits", f"{target} +{amount}", key=target)
    if "--hang" in sys.argv:  # die with the transaction open: a zombie
        producer.flush()
        os._exit(0)
    if hold is not None:  # written, not committed: read_committed readers wait here
        producer.flush()
        open(hold + ".open", "w").close()
        while not os.path.exists(hold):
            time.sleep(0.05)
    if "--abort" in sys.argv:
        producer.abort_transaction()
    else:
        producer.commit_transaction()
    producer.close()


if __name__ == "__main__":
    main()
