"""The crew terminal: a mobile web app for patrol crews (``/crew``) and its device-authenticated
API (``/api/crew/...``)."""
