"""Training the matcher: the training loop and configuration (`training`) and the datasets it
reads (`sources`: on-the-fly synthetic pairs, CVFM folders, VIGOR, KITTI)."""
