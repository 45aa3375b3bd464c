# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The PII scanner in native code, for ASCII text: the same findings as `_detect._find_regex`.

`_detect._find_regex` (the regular expressions) stays the oracle: `tests/test_scan.py` checks
on generated text that both find the same (kind, start, end), and `tests/fuzz/fuzz_scan.py`
runs this scanner on arbitrary input under atheris. Each pattern below is the regex beside
it, written as the backtracking engine runs it: greedy quantifiers try their longest option
first, an alternation its first branch, and the first way through that satisfies the
lookahead is the match.

Text that is not ASCII returns None and the caller uses the regex: `\\w` and `\\d` are
Unicode classes there, which the regex engine knows better than a copy of its tables would.

Every character is read through `char_at`, which answers 0 (no character, never in any class)
outside the text: no index reaches memory outside the string.
"""

import ipaddress

cdef extern from "Python.h":
    const void* PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    int PyUnicode_IS_ASCII(object text)


cdef struct Text:
    const unsigned char* data
    Py_ssize_t length  # characters visible: a lookahead at `length` sees the end


cdef inline int char_at(Text t, Py_ssize_t i) noexcept nogil:
    if i < 0 or i >= t.length:
        return 0
    return t.data[i]


cdef inline bint is_digit(int c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint is_upper(int c) noexcept nogil:
    return 65 <= c <= 90


cdef inline bint is_alpha(int c) noexcept nogil:
    return 65 <= c <= 90 or 97 <= c <= 122


cdef inline bint is_word(int c) noexcept nogil:  # \w on ASCII
    return is_digit(c) or is_alpha(c) or c == 95


cdef inline bint is_hex(int c) noexcept nogil:
    return is_digit(c) or 65 <= c <= 70 or 97 <= c <= 102


cdef inline bint is_label(int c) noexcept nogil:  # [A-Za-z0-9\-]
    return is_digit(c) or is_alpha(c) or c == 45


cdef inline bint is_local(int c) noexcept nogil:  # [A-Za-z0-9._%+\-]
    return is_label(c) or c == 46 or c == 95 or c == 37 or c == 43


cdef inline bint is_sep(int c) noexcept nogil:  # [ .-]
    return c == 32 or c == 46 or c == 45


cdef inline bint is_run_char(int c) noexcept nogil:  # [\d ().+\-]
    return is_digit(c) or c == 32 or c == 40 or c == 41 or c == 46 or c == 43 or c == 45


cdef inline Py_ssize_t digits(Text t, Py_ssize_t p, Py_ssize_t most) noexcept nogil:
    cdef Py_ssize_t n = 0
    while n < most and is_digit(char_at(t, p + n)):
        n += 1
    return n


# --- email: "@" + domain forward, the local part backwards -------------------------------


cdef Py_ssize_t email_domain_end(Text t, Py_ssize_t at) noexcept nogil:
    """@[A-Za-z0-9\\-]+(?:\\.[A-Za-z0-9\\-]+)*\\.[A-Za-z]{2,} matched at `at`: the end, or -1.

    Labels are maximal runs (a shorter one leaves a label character where "." must be), so
    the match ends in the last label after a "." whose alphabetic prefix is 2 or longer.
    """
    cdef Py_ssize_t q = at + 1, start, end, alpha, best = -1
    while is_label(char_at(t, q)):
        q += 1
    if q == at + 1:
        return -1
    while char_at(t, q) == 46:
        start = q + 1
        end = start
        while is_label(char_at(t, end)):
            end += 1
        if end == start:
            break
        alpha = start
        while is_alpha(char_at(t, alpha)):
            alpha += 1
        if alpha - start >= 2:
            best = alpha
        q = end
    return best


cdef void find_emails(Text t, list found):
    cdef Py_ssize_t consumed = 0, at = 1, domain_end, local_start
    while at < t.length:
        if char_at(t, at) != 64:
            at += 1
            continue
        domain_end = email_domain_end(t, at)
        if domain_end != -1:
            local_start = at
            while is_local(char_at(t, local_start - 1)):
                local_start -= 1
            if local_start < at and local_start >= consumed:
                found.append((local_start, domain_end, "email"))
                consumed = at = domain_end
        at += 1


# --- IPv6 candidates: (?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]) --------


cdef Py_ssize_t ipv6_end(Text t, Py_ssize_t s) noexcept nogil:
    cdef int before = char_at(t, s - 1), after
    cdef Py_ssize_t p = s, groups = 0, h
    if is_word(before) or before == 58:
        return -1
    while groups < 7:
        h = 0
        while h < 4 and is_hex(char_at(t, p + h)):
            h += 1
        if char_at(t, p + h) != 58:
            break
        p += h + 1
        groups += 1
    if groups < 2:
        return -1
    # fewer groups never match: the final part would then stand before a ":"
    h = 0
    while h < 4 and is_hex(char_at(t, p + h)):
        h += 1
    after = char_at(t, p + h)
    if is_word(after) or after == 58:
        return -1
    return p + h


cdef void find_ipv6(str text, Text t, list found):
    cdef Py_ssize_t s = 0, end
    while s < t.length:
        end = ipv6_end(t, s)
        if end == -1:
            s += 1
            continue
        try:
            ipaddress.ip_address(text[s:end])
        except ValueError:
            pass
        else:
            found.append((s, end, "ip"))
        s = end


# --- IBAN: \b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b, then mod 97 --------------------------


cdef inline bint is_upper_or_digit(int c) noexcept nogil:
    return is_upper(c) or is_digit(c)


cdef Py_ssize_t iban_end(Text t, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t p = s + 4, count = 0, best = -1
    cdef int c
    if is_word(char_at(t, s - 1)) or not (
        is_upper(char_at(t, s))
        and is_upper(char_at(t, s + 1))
        and is_digit(char_at(t, s + 2))
        and is_digit(char_at(t, s + 3))
    ):
        return -1
    while count < 30:
        c = char_at(t, p)
        if c == 32 and is_upper_or_digit(char_at(t, p + 1)):
            p += 2
        elif is_upper_or_digit(c):
            p += 1
        else:
            break
        count += 1
        if count >= 11 and not is_word(char_at(t, p)):
            best = p  # the greedy repeat backs off to the longest count a \b follows
    return best


cdef bint iban_valid(Text t, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Mod 97 of the compact IBAN with its first four characters moved to the end."""
    cdef Py_ssize_t length = 0, i, k
    cdef int c, remainder = 0
    for i in range(s, e):
        if char_at(t, i) != 32:
            length += 1
    if not 15 <= length <= 34:
        return False
    for k in range(2):  # the characters after the first four, then the first four
        i = s
        length = 0
        while i < e:
            c = char_at(t, i)
            i += 1
            if c == 32:
                continue
            length += 1
            if (k == 0) == (length <= 4):
                continue
            if is_digit(c):
                remainder = (remainder * 10 + c - 48) % 97
            else:
                remainder = (remainder * 100 + c - 55) % 97
    return remainder == 1


cdef void find_ibans(Text t, list found):
    cdef Py_ssize_t s = 0, end
    while s < t.length:
        end = iban_end(t, s)
        if end == -1:
            s += 1
            continue
        if iban_valid(t, s, end):
            found.append((s, end, "iban"))
        s = end


# --- numbers: runs of [\d+(][\d ().+\-]{5,}\d, then the patterns inside each run ----------


cdef Py_ssize_t numeric_run_end(Text t, Py_ssize_t s) noexcept nogil:
    cdef int c = char_at(t, s)
    cdef Py_ssize_t end, last
    if not (is_digit(c) or c == 43 or c == 40):
        return -1
    end = s + 1
    while is_run_char(char_at(t, end)):
        end += 1
    last = end - 1
    while last >= s + 6 and not is_digit(char_at(t, last)):
        last -= 1
    return last + 1 if last >= s + 6 else -1


cdef inline bint preceded_by_word(Text t, Py_ssize_t s, const char* word, Py_ssize_t n) noexcept nogil:
    """(?<!(?i:word) ) at s: `word` case-insensitively, then a space, just before s."""
    cdef Py_ssize_t i
    if char_at(t, s - 1) != 32:
        return False
    for i in range(n):
        if (char_at(t, s - 1 - n + i) | 32) != word[i]:
            return False
    return True


cdef Py_ssize_t ipv4_end(Text t, Py_ssize_t s) noexcept nogil:
    """(?<![\\w.])(?<![A-Za-z]/)(?<!version )(?<!build )(?:\\d{1,3}\\.){3}\\d{1,3}(?![\\w.])"""
    cdef int before = char_at(t, s - 1), after
    cdef Py_ssize_t p = s, n, group
    if is_word(before) or before == 46:
        return -1
    if before == 47 and is_alpha(char_at(t, s - 2)):
        return -1
    if preceded_by_word(t, s, b"version", 7) or preceded_by_word(t, s, b"build", 5):
        return -1
    for group in range(3):
        n = digits(t, p, 3)
        if n == 0 or char_at(t, p + n) != 46:
            return -1
        p += n + 1
    n = digits(t, p, 3)
    after = char_at(t, p + n)
    if n == 0 or is_word(after) or after == 46:
        return -1
    return p + n


cdef bint ipv4_valid(Text t, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Each part at most 255, without a leading zero (as `truncate_ip`)."""
    cdef Py_ssize_t i = s, start
    cdef int value
    while i < e:
        start = i
        value = 0
        while i < e and is_digit(char_at(t, i)):
            value = value * 10 + char_at(t, i) - 48
            i += 1
        if value > 255 or (i - start > 1 and char_at(t, start) == 48):
            return False
        i += 1  # the dot
    return True


cdef Py_ssize_t ssn_end(Text t, Py_ssize_t s) noexcept nogil:
    """(?<![\\w-])\\d{3}-\\d{2}-\\d{4}(?![\\w-])"""
    cdef int before = char_at(t, s - 1), after = char_at(t, s + 11)
    if is_word(before) or before == 45 or is_word(after) or after == 45:
        return -1
    if (
        digits(t, s, 3) == 3
        and char_at(t, s + 3) == 45
        and digits(t, s + 4, 2) == 2
        and char_at(t, s + 6) == 45
        and digits(t, s + 7, 4) == 4
    ):
        return s + 11
    return -1


cdef bint ssn_valid(Text t, Py_ssize_t s) noexcept nogil:
    cdef int a0 = char_at(t, s), a1 = char_at(t, s + 1), a2 = char_at(t, s + 2)
    if a0 == 57 or (a0 == a1 == a2 and (a0 == 48 or a0 == 54)):  # 9xx, 000, 666
        return False
    if char_at(t, s + 4) == 48 and char_at(t, s + 5) == 48:
        return False
    return not (
        char_at(t, s + 7) == 48
        and char_at(t, s + 8) == 48
        and char_at(t, s + 9) == 48
        and char_at(t, s + 10) == 48
    )


cdef inline bint card_boundary(int c) noexcept nogil:  # [\w.,-]
    return is_word(c) or c == 46 or c == 44 or c == 45


cdef Py_ssize_t card_end(Text t, Py_ssize_t s) noexcept nogil:
    """(?<![\\w.,-])\\d(?:[ -]?\\d){12,18}(?![\\w.,-])"""
    cdef Py_ssize_t p = s + 1, count = 0, best = -1
    cdef int c
    if card_boundary(char_at(t, s - 1)) or not is_digit(char_at(t, s)):
        return -1
    while count < 18:
        c = char_at(t, p)
        if (c == 32 or c == 45) and is_digit(char_at(t, p + 1)):
            p += 2
        elif is_digit(c):
            p += 1
        else:
            break
        count += 1
        if count >= 12 and not card_boundary(char_at(t, p)):
            best = p
    return best


cdef bint card_valid(Text t, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """13 to 19 digits, Luhn-valid, not all the same digit."""
    cdef Py_ssize_t i, count = 0
    cdef int c, value, total = 0, first = -1
    cdef bint varied = False
    i = e - 1
    while i >= s:
        c = char_at(t, i)
        i -= 1
        if not is_digit(c):
            continue
        value = c - 48
        if first == -1:
            first = c
        elif c != first:
            varied = True
        if count % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
        count += 1
    return 13 <= count <= 19 and total % 10 == 0 and varied


cdef inline bint phone_lookahead(Text t, Py_ssize_t p) noexcept nogil:  # (?![\w.])
    cdef int c = char_at(t, p)
    return not (is_word(c) or c == 46)


cdef Py_ssize_t phone_groups(Text t, Py_ssize_t p, int count) noexcept nogil:
    """(?:[ .-]?\\d{2,4}){1,4} then the lookahead, `count` repetitions already matched."""
    cdef Py_ssize_t q, n, end
    cdef int with_separator
    if count < 4:
        for with_separator in range(1, -1, -1):
            if with_separator and not is_sep(char_at(t, p)):
                continue
            q = p + with_separator
            n = digits(t, q, 4)
            while n >= 2:
                end = phone_groups(t, q + n, count + 1)
                if end != -1:
                    return end
                n -= 1
    if count >= 1 and phone_lookahead(t, p):
        return p
    return -1


cdef Py_ssize_t phone_subscriber(Text t, Py_ssize_t p) noexcept nogil:
    """\\d{1,4}(?:[ .-]?\\d{2,4}){1,4}(?![\\w.])"""
    cdef Py_ssize_t n = digits(t, p, 4), end
    while n >= 1:
        end = phone_groups(t, p + n, 0)
        if end != -1:
            return end
        n -= 1
    return -1


cdef Py_ssize_t phone_international(Text t, Py_ssize_t s) noexcept nogil:
    """\\+[1-9]\\d{0,2}[ .-]?(?:\\(\\d{1,4}\\)[ .-]?)?\\d{1,4}(?:[ .-]?\\d{2,4}){1,4}(?![\\w.])"""
    cdef Py_ssize_t n, q, area, r, end
    cdef int first = char_at(t, s + 1), with_separator, after_area
    if char_at(t, s) != 43 or not (49 <= first <= 57):
        return -1
    n = digits(t, s + 2, 2)
    while n >= 0:
        for with_separator in range(1, -1, -1):
            q = s + 2 + n
            if with_separator:
                if not is_sep(char_at(t, q)):
                    continue
                q += 1
            if char_at(t, q) == 40:  # the optional "(area)" first, as the greedy "?" does
                area = digits(t, q + 1, 4)
                if area >= 1 and char_at(t, q + 1 + area) == 41:
                    r = q + 2 + area
                    for after_area in range(1, -1, -1):
                        if after_area and not is_sep(char_at(t, r)):
                            continue
                        end = phone_subscriber(t, r + after_area)
                        if end != -1:
                            return end
            end = phone_subscriber(t, q)
            if end != -1:
                return end
        n -= 1
    return -1


cdef Py_ssize_t phone_two_parts(Text t, Py_ssize_t q) noexcept nogil:
    """\\d{3,4}[ .-]?\\d{3,4}(?![\\w.])"""
    cdef Py_ssize_t n = digits(t, q, 4), n2, r
    cdef int with_separator
    while n >= 3:
        for with_separator in range(1, -1, -1):
            r = q + n
            if with_separator:
                if not is_sep(char_at(t, r)):
                    continue
                r += 1
            n2 = digits(t, r, 4)
            while n2 >= 3:
                if phone_lookahead(t, r + n2):
                    return r + n2
                n2 -= 1
        n -= 1
    return -1


cdef Py_ssize_t phone_area_code(Text t, Py_ssize_t s) noexcept nogil:
    """\\(\\d{2,4}\\)[ .-]?\\d{3,4}[ .-]?\\d{3,4}(?![\\w.])"""
    cdef Py_ssize_t n, r, end
    cdef int with_separator
    if char_at(t, s) != 40:
        return -1
    n = digits(t, s + 1, 4)
    while n >= 2:
        if char_at(t, s + 1 + n) == 41:
            for with_separator in range(1, -1, -1):
                r = s + 2 + n
                if with_separator:
                    if not is_sep(char_at(t, r)):
                        continue
                    r += 1
                end = phone_two_parts(t, r)
                if end != -1:
                    return end
        n -= 1
    return -1


cdef Py_ssize_t phone_national(Text t, Py_ssize_t s) noexcept nogil:
    """0\\d{2,4}[ .-]\\d{3,4}[ .-]?\\d{3,4}(?![\\w.])"""
    cdef Py_ssize_t n, end
    if char_at(t, s) != 48:
        return -1
    n = digits(t, s + 1, 4)
    while n >= 2:
        if is_sep(char_at(t, s + 1 + n)):
            end = phone_two_parts(t, s + 2 + n)
            if end != -1:
                return end
        n -= 1
    return -1


cdef Py_ssize_t phone_us(Text t, Py_ssize_t s) noexcept nogil:
    """\\d{3}[.-]\\d{3}[.-]\\d{4}(?![\\w.])"""
    cdef int a = char_at(t, s + 3), b = char_at(t, s + 7)
    if (
        digits(t, s, 3) == 3
        and (a == 46 or a == 45)
        and digits(t, s + 4, 3) == 3
        and (b == 46 or b == 45)
        and digits(t, s + 8, 4) == 4
        and phone_lookahead(t, s + 12)
    ):
        return s + 12
    return -1


cdef Py_ssize_t phone_end(Text t, Py_ssize_t s) noexcept nogil:
    cdef int before = char_at(t, s - 1)
    cdef Py_ssize_t end
    if is_word(before) or before == 43 or before == 46:  # (?<![\w+.])
        return -1
    end = phone_international(t, s)
    if end == -1:
        end = phone_area_code(t, s)
    if end == -1:
        end = phone_national(t, s)
    if end == -1:
        end = phone_us(t, s)
    return end


cdef bint phone_valid(Text t, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    cdef Py_ssize_t i, count = 0
    for i in range(s, e):
        if is_digit(char_at(t, i)):
            count += 1
    return 8 <= count <= 15


cdef void find_numbers(Text t, Py_ssize_t start, list found):
    """The numeric alternation over one run, as `finditer(text, start, run_end + 1)` does: the
    first alternative matching at a position is the match, valid or not."""
    cdef Py_ssize_t p = start, end
    while p < t.length:
        end = ipv4_end(t, p)
        if end != -1:
            if ipv4_valid(t, p, end):
                found.append((p, end, "ip"))
            p = end
            continue
        end = ssn_end(t, p)
        if end != -1:
            if ssn_valid(t, p):
                found.append((p, end, "ssn"))
            p = end
            continue
        end = card_end(t, p)
        if end != -1:
            if card_valid(t, p, end):
                found.append((p, end, "card"))
            p = end
            continue
        end = phone_end(t, p)
        if end != -1:
            if phone_valid(t, p, end):
                found.append((p, end, "phone"))
            p = end
            continue
        p += 1


def find(str text):
    """(start, end, kind) of every candidate that passes its check, unsorted and possibly
    overlapping (as `_detect` collects them); None when `text` is not ASCII."""
    if not PyUnicode_IS_ASCII(text):
        return None
    cdef Text t
    cdef Text window
    t.data = <const unsigned char*>PyUnicode_DATA(text)
    t.length = PyUnicode_GET_LENGTH(text)
    cdef list found = []
    cdef Py_ssize_t i, run_end
    cdef bint has_at = False, has_colon = False
    cdef int c
    for i in range(t.length):
        c = char_at(t, i)
        if c == 64:
            has_at = True
        elif c == 58:
            has_colon = True
    if has_at:
        find_emails(t, found)
    if has_colon:
        find_ipv6(text, t, found)
    find_ibans(t, found)
    i = 0
    while i < t.length:
        run_end = numeric_run_end(t, i)
        if run_end == -1:
            i += 1
            continue
        window.data = t.data
        window.length = min(t.length, run_end + 1)  # the lookaheads see one character past
        find_numbers(window, i, found)
        i = run_end
    return found
