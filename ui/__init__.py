"""Streamlit helpers shared by every page (the library itself, saliency_core, never imports Streamlit).

- shell.setup(title): page config, navigation and the shared sidebar (ui.sidebar); call it first on every
  page.
- view.require(): the current View (image, model, input, predictions, target) chosen in the sidebar.
- state: every session-state key; store.SessionStore: the bounded store of the session's maps and
  evaluations.
- params.method_picker / params.form / params.values: methods and their parameters from the schema.
- results: the session's computed maps, and running methods with progress and cancel (widgets.progress).
- display.controls / display.result_view: display settings and the result view (input, overlay, heatmap).
- export: PNG, .npz and JSON card builders and download buttons; cards: evaluations and the card's metrics;
  share: share links.
- widgets: pieces several pages draw (the progress-and-cancel runner, the method picker of Compare and
  Evaluate).
- tasks: one module per task (target picker titles and labels, drawing, threshold, share-link fields).
- Pages: explore, compare, evaluate (a package, one module per tab), learn (lessons come from the method
  files), status. A page module never imports another page's module. See ARCHITECTURE.md.
"""
