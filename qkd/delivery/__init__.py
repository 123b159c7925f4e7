"""Key delivery: key sources (``KeySource``), the ETSI GS QKD 014 client and the local KME pair,
and the durable key store that delivers every key once.

Hazmat: plain bytes; ``agile`` wraps the keys for applications.
"""
