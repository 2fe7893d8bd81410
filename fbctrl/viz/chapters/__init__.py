"""The figures of the findings chapters' shipped-network sections, one module per chapter
(beside :mod:`fbctrl.book.chapters`), and those of the chapter "The paper's protocol"
(:mod:`~fbctrl.viz.chapters.paper_protocol`); the paper-scale figures of the findings chapters
are in :mod:`fbctrl.viz.scale`."""
