"""geodispatch.notify"""
