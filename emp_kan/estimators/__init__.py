"""scikit-learn estimators around the discovery: the regressor, the classifier, and saving."""
