"""The digits example: a CNN on 8x8 handwritten digits, with pre- and post-processing."""
