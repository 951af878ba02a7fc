"""Federation: regional centres feeding a national centre (NENA EIDO export and import)."""
