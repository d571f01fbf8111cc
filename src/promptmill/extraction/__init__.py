"""How answers are read out of responses: the parts behind ``promptmill.extract``.

``text`` finds statements (boxes, tags, JSON, tables, sentences, corrections, hedges);
``options`` recognises restated options; ``choice`` and ``mathanswer`` decide a response's
final answer; ``mathnorm`` and ``equivalence`` compare math answers; ``judge`` asks a model.
"""
