"""Loopback stand-ins for services that have no local server: a fake Hugging Face Hub (``fakehub``)."""
