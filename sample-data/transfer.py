"""Move money between accounts atomically: the debit goes to topic `debits`, the credit to
topic `credits`, both in one transaction. Used by transactions.sh.

    python sample-data/transfer.py TRANSACTIONAL_ID FROM TO AMOUNT [--abort] [--hang]
"""

import os
import sys

from kcli import Producer


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    tid, source, target, amount = args
    producer = Producer({"transactional.id": tid})
    producer.init_transactions()
    producer.begin_transaction()
    producer.send("debits", f"{source} -{amount}", key=source)
    producer.send("credits", f"{target} +{amount}", key=target)
    if "--hang" in sys.argv:  # die with the transaction open: a zombie
        producer.flush()
        os._exit(0)
    if "--abort" in sys.argv:
        producer.abort_transaction()
    else:
        producer.commit_transaction()
    producer.close()


if __name__ == "__main__":
    main()
