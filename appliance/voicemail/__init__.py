"""Voicemail: mailboxes (WAV files plus an SQLite index) and the deposit/retrieval channel drivers."""
