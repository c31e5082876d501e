"""The control panel, tested over HTTP and in a real headless Chromium against a live server."""
