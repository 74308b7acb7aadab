"""From search to the edit: spans of videos cut to files and joined into reels (ffmpeg), and
timelines that editing programs open (OpenTimelineIO)."""
