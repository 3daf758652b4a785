"""The back office's own procedures in the review UI: uploads from the browser (``uploads``).

Plain Python, above the pipeline and below the tasks and the web app, which both call it.
"""
