"""What happens to one photo, in order: detect faces, eye state, align and mask, references, exemplar, generate, blend, detail, self-check."""
