"""DRF endpoints of the login step and phone enrolment, for SPAs and mobile apps."""
