"""`migrator web`: the control panel, an entry point beside the CLI that reads and acts through the same domain calls
(panel: what the pages show; actions: what their forms do; security: token and CSRF; app: the Starlette routes)."""
