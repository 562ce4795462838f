"""Python-backend model files. Never imported here: ``tdeploy build`` copies each one to
``<repository>/<model>/<version>/model.py``, with the shared recipe code it imports beside it."""
