//! The fleet simulator (issue 6); see ARCHITECTURE.md.
