"""Widgets shared by several pages.

- progress: running jobs one after another under one progress bar with a Cancel button.
- variants: the method multiselect of Compare and Evaluate (methods with the parameters set on Explore).
"""
