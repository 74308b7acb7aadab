"""Media files: probing and limits, frame decoding and thumbnails, scene detection, subtitles, exports."""
