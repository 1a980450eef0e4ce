"""Where callers meet the app: the HTTP triggers' API and the admin CLI (errors are mapped here, once)."""
