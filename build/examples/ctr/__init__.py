"""The ctr example: an XGBoost click-through-rate model with the trainer's feature code."""
