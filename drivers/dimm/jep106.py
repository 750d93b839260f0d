"""Name JEP-106 manufacturer codes for the memory, module and on-module chip makers we meet.

Codes are (bank, code): bank counts from 1 (the number of 0x7F continuation codes plus one) and
code is the 7-bit identifier without its odd-parity bit. Checked against the JEP-106 table
transcribed in OpenOCD (src/helper/jep106.inc) and against the golden SPD images.
"""

from __future__ import annotations

MANUFACTURERS: dict[tuple[int, int], str] = {
    # Bank 1
    (1, 0x01): "AMD",
    (1, 0x09): "Intel",
    (1, 0x24): "IBM",
    (1, 0x2C): "Micron Technology",
    (1, 0x2D): "SK hynix",
    (1, 0x33): "IDT",
    (1, 0x4E): "Samsung",
    # Bank 2
    (2, 0x14): "Smart Modular",
    (2, 0x18): "Kingston",
    (2, 0x32): "Mushkin Enhanced Memory",
    (2, 0x3A): "PNY Technologies",
    (2, 0x40): "Viking Components",
    (2, 0x4F): "Transcend Information",
    (2, 0x7A): "Apacer Technology",
    # Bank 3
    (3, 0x1E): "Corsair",
    (3, 0x7E): "Elpida",
    # Bank 4
    (4, 0x0B): "Nanya Technology",
    (4, 0x16): "Netlist",
    (4, 0x25): "Kingmax Semiconductor",
    # Bank 5
    (5, 0x23): "Renesas Electronics",
    (5, 0x33): "Inphi",
    (5, 0x43): "Ramaxel Technology",
    (5, 0x4B): "A-DATA Technology",
    (5, 0x4D): "G.Skill",
    (5, 0x6F): "Team Group",
    # Bank 6
    (6, 0x02): "Patriot Memory",
    (6, 0x1B): "Crucial Technology",
    (6, 0x51): "Qimonda",
    (6, 0x77): "Avant Technology",
    # Bank 7
    (7, 0x1D): "Rambus",
    (7, 0x32): "Montage Technology",
    (7, 0x53): "Silicon Power",
    (7, 0x5E): "Lexar Media",
    (7, 0x63): "ATP Electronics",
    (7, 0x6D): "V-Color Technology",
    (7, 0x71): "InnoDisk",
    # Bank 8
    (8, 0x5D): "Wilk Elektronik (GOODRAM)",
    # Bank 9
    (9, 0x18): "Essencore",
    # Bank 11
    (11, 0x0C): "Richtek Power",
    (11, 0x11): "ChangXin Memory Technologies",
    # Bank 12
    (12, 0x10): "Anpec Electronics",
}


def manufacturer_name(bank: int, code: int) -> str | None:
    """Return the manufacturer's name for a JEP-106 bank and 7-bit code, or None if unlisted."""
    return MANUFACTURERS.get((bank, code))
