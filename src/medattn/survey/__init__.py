"""The clinician survey: blinded explanation-map panels rated in a browser, stored in SQL, analysed.

``create`` builds a survey from a run's stored maps, ``app`` serves it (FastAPI), ``store`` holds the
answers (SQLAlchemy), ``analyze`` computes preference, relevance and agreement statistics.
"""
