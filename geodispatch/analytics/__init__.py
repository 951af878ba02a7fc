"""geodispatch.analytics"""
