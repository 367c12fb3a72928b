"""The operator's command line for Courtesy (`courtesy --help`)."""
