"""What the paint-app plugins share, in plain Python (no Krita, no Blender, no Qt): the backend
connection (``connection``, driven by the app's own loop), reading a job into a request and a
result back into layers (``jobs``, ``pixels``), the colorize and shot flows (``controller``,
``frames``), which masks and where results go (``masks``, ``placement``), what a pick is
(``sources``) and the settings (``settings``). Each app's plugin adds only the modules that touch
its API: ``refcolor_krita`` for Krita (the Blender add-on is issue 21).
"""
