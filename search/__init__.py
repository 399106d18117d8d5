"""Product search's shared parts: the lexical index, the text encoder's runtime, the dense index and fusion.

The scorer (serving/) answers Search with them and training (training/) fits and evaluates the ranker on them,
so they live below both engines; nothing here imports an engine.
"""
