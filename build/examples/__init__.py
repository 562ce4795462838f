"""The example model families (digits, ctr): everything specific to them lives here.

Each family's folder holds its training recipe, the feature / pre- and post-processing code it
shares with its Python models, and the typed client and load-test payloads a service would write
for it. They use only the public seams a user's own models use.
"""
