"""Shared foundations of botgw: settings, ids, codecs, errors, Redis keys and the store.

Only :mod:`shared.store` talks to Redis; ``rest`` and ``gateway`` call its domain
operations.
"""
