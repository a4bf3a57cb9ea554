"""The webhook dispatcher (``botgw webhooks``): a process of its own that POSTs
bots' updates to their webhooks."""
