"""The live path: the frame hub and its partition assignments, MJPEG streams, the camera
wall and the camera list. It never imports the past (past/): where a live URL reaches
into the past, the feature hands it the past's routes."""
