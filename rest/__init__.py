"""The REST side of botgw: Bot API (both dialects), client API and management API."""
