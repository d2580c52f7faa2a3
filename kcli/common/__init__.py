"""What every layer shares, as Kafka's ``org.apache.kafka.common`` is shared by its clients,
broker and storage: Kafka's errors (``errors``), the clock (``clock``) and where the default
data directory is (``paths``). It imports nothing from the rest of kcli."""
