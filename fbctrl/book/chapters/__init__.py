"""One module per chapter of the book: each returns the numbers, sentences, tables and figure
inputs its notebook shows, so that the notebook's cells read like the text around them.

- :mod:`~fbctrl.book.chapters.model_and_task` "The model and the task";
- :mod:`~fbctrl.book.chapters.online_correction` "Online correction by the controller";
- :mod:`~fbctrl.book.chapters.activity_space` "Finding 1: learning in activity space";
- :mod:`~fbctrl.book.chapters.adaptation` "Adapting to a visuomotor rotation";
- :mod:`~fbctrl.book.chapters.decoupling` "Finding 2: decoupling from the past";
- :mod:`~fbctrl.book.chapters.second_order` "Finding 3: efficient, second-order updates";
- :mod:`~fbctrl.book.chapters.lr_sweep` "Learning rates";
- :mod:`~fbctrl.book.chapters.performance` "Performance";
- :mod:`~fbctrl.book.chapters.paper_protocol` "The paper's protocol".
"""
