"""What EMP is compared with on the same rows: pyoperon's genetic programming and pykan's own
tutorial workflow."""
