"""Networks of the paper, built with :class:`pws.nn.NormMethod` so that every method fits every model."""
