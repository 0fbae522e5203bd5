"""Each chapter's explorer: its figure driven by controls, live in Jupyter and scrubbable in
the book, built on the scaffold of ``closedloop.widgets`` (``Explorer``, ``slider``, ...).

``ch1.gain_space_explorer``, ``ch2.stage1_explorer``, ``ch3.tradeoff_explorer``,
``ch4.tracking_explorer``, ``ch5.atlas_explorer``, ``ch6.plant_explorer``.
"""
