"""One function per figure of the book, by chapter: chapter cells stay one call long."""
