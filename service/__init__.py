"""The service layer: what the HTTP API and the worker loop do, on top of the OCR, the database and the files."""
