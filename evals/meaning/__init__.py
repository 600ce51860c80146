"""The meaning checks' data, training and side-by-side measurement (the product's side is chat/engine/meaning.py)."""
