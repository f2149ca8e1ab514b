"""Transports run the probe on a host and return what it printed. They never judge."""
