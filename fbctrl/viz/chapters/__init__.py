"""The figures of the findings chapters' shipped-network sections, one module per chapter
(beside :mod:`fbctrl.book.chapters`); the paper-scale figures are in :mod:`fbctrl.viz.scale`."""
