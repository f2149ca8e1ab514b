"""Renderers: one module per output format. They read reports; they never judge."""
