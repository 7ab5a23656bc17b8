"""The runtime: what runs an article through a worker.

``worker`` sets everything up and runs faust; ``app`` defines the faust app, its topics and
its two agents (stage 1: decode, clean, NER; stage 2: dedup, alerts, with Kafka-backed
state); ``transport`` is faust's Kafka consumer with stream's fixes, and ``positions`` says
which consumer positions may be committed, when a partition is sought back and which
records are skipped as re-fetches; ``pipeline`` and ``chain`` run the processors;
``outbox`` confirms every record a batch sends; ``kafka`` and ``security`` are the Kafka
clients and how they connect; ``inputs``, ``embedded`` and ``versions`` serve the command
line and the start-up checks.
"""
