"""OCR internals: model factories, the PP-OCR bridges, safe image loading and the result cache.

`aplicador_ocr.py` at the top level is the face of this layer; the rest of the service talks to it.
"""
