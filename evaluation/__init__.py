"""The lab beside the product: scoring a checkpoint against labelled images and peer models (make eval),
refine=true's colour error. shoeseg never imports it; it runs from a checkout."""
