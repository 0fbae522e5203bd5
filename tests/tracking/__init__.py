"""Tests of ``closedloop.tracking``, one module per module of the package (a package, so
that their names do not clash with ``tests/test_training.py`` and they share ``helpers``)."""
