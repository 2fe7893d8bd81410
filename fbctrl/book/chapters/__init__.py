"""One module per chapter of the book: each returns the numbers, sentences, tables and figure
inputs its notebook shows, so that the notebook's cells read like the text around them.

- :mod:`~fbctrl.book.chapters.adaptation` "Adapting to a visuomotor rotation";
- :mod:`~fbctrl.book.chapters.lr_sweep` "Learning rates";
- :mod:`~fbctrl.book.chapters.activity_space` "Finding 1: learning in activity space".
"""
