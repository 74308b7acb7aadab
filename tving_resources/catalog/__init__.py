"""The video catalog (which file each video id stands for) and the watched folder's listing."""
