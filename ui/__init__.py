"""Tasklight's NiceGUI pages and components; they bind to services and hold no business logic."""
