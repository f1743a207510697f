"""Task modules that plan changes (``Change``s); the engine executes them."""
