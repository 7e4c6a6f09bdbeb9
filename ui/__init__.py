"""Streamlit helpers shared by every page (the library itself, saliency_core, never imports Streamlit).

- shell.setup(title): page config, navigation and the shared sidebar; call it first on every page.
- view.require(): the current View (image, model, input, predictions, target) chosen in the sidebar.
- params.method_picker / params.form / params.values: methods and their parameters from the schema.
- results: the session's computed maps, and running methods with progress and cancel.
- display.controls / display.result_view: display settings and the result view (input, overlay, heatmap).
- export: PNG, .npz and JSON card builders and download buttons; share: share links.
"""
